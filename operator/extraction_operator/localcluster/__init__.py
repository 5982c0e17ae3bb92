"""The local cluster: a Kubernetes API emulator plus a job runner, for tests and `make demo`.

There is no Docker engine and no cluster on our machines, so the operator is exercised against an
in-process API server (`localcluster.apiserver`) that follows real API server semantics, and a job
runner that plays kubelet and Job controller by running each Job's container command locally.
"""
