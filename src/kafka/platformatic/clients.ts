/**
 * The @platformatic/kafka clients (pure TypeScript; Node >= 22.22 / 24.6, or Bun), as factory.ts
 * hands them out. Only the files of this folder import the library.
 */
import type { KafkaClients } from '../types.js';
import { platformaticAdmin } from './admin.js';
import { PlatformaticBatchConsumer } from './consumer.js';
import { PlatformaticProducer } from './producer.js';

export const platformaticClients: KafkaClients = {
  kind: 'platformatic',
  producer: (config, clientId, onDelivery, eventsOf) => PlatformaticProducer.connect(config, clientId, onDelivery, eventsOf),
  batchConsumer: (config, options) => PlatformaticBatchConsumer.connect(config, options),
  admin: platformaticAdmin,
};
