"""The Videoflix services, one package each (`services.auth`, `services.catalog`, ...)."""
