"""The real-cluster test tier: a Kubernetes control plane built from Go modules and run on loopback.

`build.py` builds kube-apiserver, kube-controller-manager, kube-scheduler and etcd from the
project's `controlplane/` Go module into a cache outside the repository; `pki.py` makes the
cluster's certificates; `cluster.py` starts and stops the processes. The process kubelet that
serves as the cluster's node lives with the local cluster (`localcluster/`), since the emulator
tier runs the same pods the same way.
"""
