"""The ExtractionRun API: models, constants, validation and the generated CRD."""
