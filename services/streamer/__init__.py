"""Streamer service: HLS playlists, segments and thumbnails, handed to nginx by X-Accel-Redirect."""
