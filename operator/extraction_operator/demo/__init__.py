"""`extraction-operator demo`: a local cluster, the operator and example runs in one process.

`main.run_demo` is the subcommand; `backend` starts the cluster and operator, `follow` polls the
runs, `view` draws live progress, `summary` prints the closing report or the JSON document, and
`manifests` checks what is applied before anything starts.
"""
