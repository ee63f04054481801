"""Training the masked-face students: MaskInv (template-level distillation), G2D (generative-to-discriminative)
and MEER (mask decoupling + unmasked synthesis), each learning from a frozen, pretrained teacher.

A method keeps only its model, losses and batches (``maskinv.py``, ``g2d.py``, ``meer.py``); ``fit.py`` is the
one training loop (epochs by stage, checkpoint, resume, logs, validation) and ``methods.py`` the registry
``mfr train`` reads. Needs torch (``pip install 'mfr[train]'``); a run's student becomes a model package
through ``mfr-export onnx``'s exporter, with the run recorded in its manifest.
"""
