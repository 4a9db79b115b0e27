"""The mail catcher: a real SMTP server that keeps every message, with a web page and a JSON API that list them.

``python -m standins.mail`` runs it (the compose demo); ``make run``, the benchmark and the tests use
``standins.mail.catcher.MailCatcher`` in process. Never part of the production image.
"""
