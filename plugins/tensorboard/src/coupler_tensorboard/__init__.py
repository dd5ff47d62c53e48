"""TensorBoard for Coupler. ``coupler_tensorboard.plugin`` is the entry point (imports no tensorboard);
``coupler_tensorboard.events`` writes the event files, imported when a run starts."""
