"""Repositories: the only modules that talk to DynamoDB and SQS."""
