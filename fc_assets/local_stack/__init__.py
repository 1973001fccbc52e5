"""The local stack behind `make demo` and the tests: S3 (moto) and SFTP (asyncssh) servers on loopback.

Each server runs as its own process so that Dagster's run workers, the tests and a user's tools all talk to
it over the real wire protocol, exactly as they would to S3 or an SFTP host in production.
"""
