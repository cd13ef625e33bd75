/**
 * Worker-thread entry: runs one slice of the fleet. Protocol with the main thread:
 *   worker -> {type:'ready'}              loaded (grpc-js, protobufjs), ready to build the fleet
 *   main   -> {type:'start', t0Ms}        the run's shared start (wall-clock ms, in the future)
 *   worker -> {type:'tick', ...}          every second: counts and encoded interval histograms
 *   worker -> {type:'done', totals}       after the drain: the slice's reconciliation
 */
import assert from 'node:assert/strict';
import { parentPort, workerData } from 'node:worker_threads';
import { Fleet, type FleetSlice } from './fleet.js';
import type { LoadgenOptions } from './options.js';

assert(parentPort !== null, 'fleet-worker.js runs only as a worker thread');
const port = parentPort;
const { options, slice } = workerData as { options: LoadgenOptions; slice: FleetSlice };

port.once('message', (m: { type: 'start'; t0Ms: number }) => {
  const fleet = new Fleet(options, slice, m.t0Ms, (tick) => port.postMessage(tick));
  void fleet.run().then((totals) => port.postMessage({ type: 'done', totals }));
});
port.postMessage({ type: 'ready' });
