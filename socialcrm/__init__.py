"""socialcrm: a social-media customer-care inbox."""
