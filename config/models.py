"""No models: present so that migrate sends this app post_migrate (config.apps creates the cache table)."""
