"""The everyday CLI against any cluster: `extraction-operator get | watch | logs | redrive |
suspend | resume`, also installed as the kubectl plugin `kubectl xrun ...`.

One module per job: `args` declares the subcommands (cheap to import: no `kubernetes`),
`commands` runs them and turns every failure into one clear line, `connect` loads the kubeconfig
(or the in-cluster account), `runs` reads and patches ExtractionRuns, `watching` follows one run
with a real watch, `show` prints it with the demo's renderer (`demo.view`), `actions` holds
re-drive / suspend / resume, and `logs` finds a node's Job and pods and streams their output.
"""
