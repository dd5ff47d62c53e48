"""coupler-transformer: transformer encoders (text, numeric sequences), fine-tuning of a local pretrained Hugging
Face model, and text CSV data for Coupler."""
