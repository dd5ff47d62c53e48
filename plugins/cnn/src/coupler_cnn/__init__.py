"""A convolutional network for Coupler (``model=cnn``), on the ``coupler-torch`` engine."""
