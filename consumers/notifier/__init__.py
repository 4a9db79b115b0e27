"""Notifier stage: e-mails the account manager and triggers the processing pipeline per received invoice."""
