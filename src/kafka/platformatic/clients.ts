/** @platformatic/kafka's clients: being built (issue 20); until then selecting it fails at once. */
import { ErrorCode, StratusError } from '../../errors.js';
import type { KafkaClients } from '../types.js';

const missing = (): never => {
  throw new StratusError(ErrorCode.CONFIG_INVALID, 'kafka.client=platformatic is not built yet');
};
export const platformaticClients: KafkaClients = { kind: 'platformatic', producer: async () => missing(), batchConsumer: async () => missing(), admin: async () => missing() };
