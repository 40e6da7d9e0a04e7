"""First-run setup: the init wizard, GitHub webhooks for services, ECS environments."""
