"""RabbitMQ through pika: connection parameters, topology, publisher, the consumer loop."""
