"""The built-in NRMS-style neural user model plug-in (`nrms`; see `plugin`).

    encoder      the user encoder in numpy (serving; the exported weights)
    train_torch  its PyTorch twin and the sampled-softmax training (training only)
    plugin       NRMSPlugin: candidate generator + the `nrms_score` feature
"""
