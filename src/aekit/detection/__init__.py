"""Anomaly detection's companions: how a fitted autoencoder scores rows (:mod:`.scores`), the preprocessing of
tables (:mod:`.tabular`), outlier probabilities and confidences (:mod:`.calibration`), evaluation against labels
(:mod:`.metrics`) and figures (:mod:`.figures`). The estimator is :class:`aekit.AnomalyDetector`."""
