"""Catalog service: video metadata, uploads, the transcoding queue and the transcoder's internal API."""
