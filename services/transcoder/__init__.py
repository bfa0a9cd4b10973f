"""Transcoder: rq workers that turn an uploaded original into an HLS ladder with ffmpeg."""
