"""Monitoring artefacts built from code: the Grafana dashboard of the operator's metrics
(`dashboard.py`, built with grafana-foundation-sdk, a development dependency that the operator
itself never imports). The alerts are manifests/monitoring/prometheusrule.yaml."""
