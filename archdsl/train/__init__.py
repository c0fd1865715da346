"""Training: a LightningModule that receives its backbone, DataModules by name, and ``fit``."""
