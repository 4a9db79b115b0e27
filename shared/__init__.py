"""Code shared by the ingress and every consumer: settings, broker plumbing, messages, DocSpace client."""
