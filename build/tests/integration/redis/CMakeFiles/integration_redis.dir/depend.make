# Empty dependencies file for integration_redis.
# This may be replaced when dependencies are built.
