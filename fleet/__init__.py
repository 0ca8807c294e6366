"""Lab campaigns across device racks: a matrix of runs sent through a broker (Celery on
RabbitMQ) to one worker per device, each result stored exactly once (docs/fleet.md)."""
