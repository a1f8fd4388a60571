"""The HTTP side: one resolver factory, scope checks, routes grouped by Lambda function."""
