/** The librdkafka-based clients (@confluentinc/kafka-javascript), as factory.ts hands them out. */
import type { KafkaClients } from '../types.js';
import { nativeAdmin } from './admin.js';
import { KafkaBatchConsumer } from './consumer.js';
import { KafkaProducer } from './producer.js';

export const nativeClients: KafkaClients = {
  kind: 'native',
  producer: (config, clientId, onDelivery, eventsOf) => KafkaProducer.connect(config, clientId, onDelivery, eventsOf),
  batchConsumer: (config, options) => KafkaBatchConsumer.connect(config, options),
  admin: nativeAdmin,
};
