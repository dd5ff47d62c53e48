"""``TorchContract``: what every model of the torch engine declares (``coupler.components``), readable without
importing torch. ``coupler_torch.engine.TorchModel`` extends it; a neural plugin's factory that is a function
names it (``build_cnn.returns = TorchContract``), so that the run checks its callbacks, exporters and
``train.class_weight`` before reading any data, and lists it among the models that would work."""

from __future__ import annotations

from coupler.components import CLASSIFICATION, Model


class TorchContract(Model):
    proba_tasks = CLASSIFICATION
    reports_epochs = True  # after every epoch, validation split or not
    sample_weights = True  # a per-row weighted loss (TorchModel.weighted_loss)
    engine = "torch"
    uses_optimizer = True  # optimizer=... and scheduler=... (coupler-torch's kinds), checked before data is read
