"""Files from S3/SFTP parsed, validated, reduced to a delta and sent to Fluent."""
