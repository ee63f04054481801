"""Training. MaskInv (template-level knowledge distillation) makes a face model robust to masks.

Needs torch (``pip install 'mfr[export]'``); its output is an ordinary checkpoint that
``mfr-export onnx --weights`` turns into a model package.
"""
