/**
 * Worker-thread entry: runs one slice of the fleet. Protocol with the main thread:
 *   worker -> {type:'ready'}              loaded (grpc-js, protobufjs), ready to build the fleet
 *   main   -> {type:'start', t0Ms}        the run's shared start (wall-clock ms, in the future)
 *   worker -> {type:'tick', ...}          every second: counts and encoded interval histograms
 *   worker -> {type:'status', ...}        every 100 ms while it changes: connecting, failures
 *   main   -> {type:'window', startMs}    the measured window starts at startMs after t0
 *   main   -> {type:'stop'}               stop sending now, no drain (fail fast, overrun)
 *   worker -> {type:'done', totals}       after the drain: the slice's reconciliation
 */
import assert from 'node:assert/strict';
import { parentPort, workerData } from 'node:worker_threads';
import { Fleet, type FleetControl, type FleetSlice } from './fleet.js';
import type { LoadgenOptions } from './options.js';

assert(parentPort !== null, 'fleet-worker.js runs only as a worker thread');
const port = parentPort;
const { options, slice } = workerData as { options: LoadgenOptions; slice: FleetSlice };

let fleet: Fleet | null = null;
port.on('message', (m: { type: 'start'; t0Ms: number } | FleetControl) => {
  if (m.type === 'start') {
    assert(fleet === null, 'start comes once');
    const f = (fleet = new Fleet(options, slice, m.t0Ms, (msg) => port.postMessage(msg)));
    void f.run().then((totals) => port.postMessage({ type: 'done', totals }));
  } else {
    assert(fleet !== null, 'control messages come after start');
    fleet.control(m);
  }
});
port.postMessage({ type: 'ready' });
