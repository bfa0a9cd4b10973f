from shared.tests.seaweedfs import seaweedfs  # noqa: F401 - the session's S3 server
