"""The torch engine for Coupler. Import ``coupler_torch.engine`` (torch, Lightning) only inside a factory."""
