"""The published contract for downstream systems: an AsyncAPI document generated from the message models."""
