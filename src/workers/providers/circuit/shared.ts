import type { Redis } from "ioredis";
import type { BreakerConfig } from "../../../config-delivery.js";
import type { Admission, CircuitState } from "./state.js";

// The breaker state machine of state.ts, kept in one Redis hash per deployment, channel and
// provider, and moved by Lua scripts: each admit or record is one atomic step, so two workers
// cannot both take the half-open probe, or both count the failure that opens the breaker.
// Time is Redis's own (TIME), the one clock every worker shares, as leases use the database's.

const STATES: readonly CircuitState[] = ["closed", "half_open", "open"];

// Fields: s state (0 closed, 1 half-open, 2 open), f failures, ws window start, ou open until,
// pu probe until. A missing hash is a closed breaker. Every write refreshes a TTL longer than
// any window, cooldown or lease, so breakers of providers no longer configured disappear.
const PRELUDE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local h = redis.call('HMGET', KEYS[1], 's', 'f', 'ws', 'ou', 'pu')
local s, f, ws, ou, pu = tonumber(h[1]) or 0, tonumber(h[2]) or 0, tonumber(h[3]) or 0, tonumber(h[4]) or 0, tonumber(h[5]) or 0
local function save(ttl)
  redis.call('HSET', KEYS[1], 's', s, 'f', f, 'ws', ws, 'ou', ou, 'pu', pu)
  redis.call('PEXPIRE', KEYS[1], ttl)
end
`;

// ARGV: probeLeaseMs, ttlMs. Returns { state, allowed, probe, retryInMs }.
const ADMIT = `${PRELUDE}
if s == 0 then return {0, 1, 0, 0} end
local untl = pu
if s == 2 then untl = ou end
if now < untl then return {s, 0, 0, untl - now} end
s = 1
pu = now + tonumber(ARGV[1])
save(tonumber(ARGV[2]))
return {1, 1, 1, 0}
`;

// ARGV: ok (1/0), probe (1/0), failures, windowMs, cooldownMs, ttlMs. Returns the state after.
const RECORD = `${PRELUDE}
local ok, probe = ARGV[1] == '1', ARGV[2] == '1'
local ttl = tonumber(ARGV[6])
if s == 1 and probe then
  if ok then s, f, ws, ou, pu = 0, 0, 0, 0, 0 else s, ou, pu = 2, now + tonumber(ARGV[5]), 0 end
  save(ttl)
  return s
end
if s ~= 0 or ok then return s end
if f == 0 or now - ws >= tonumber(ARGV[4]) then f, ws = 0, now end
f = f + 1
if f >= tonumber(ARGV[3]) then s, f, ws, ou = 2, 0, 0, now + tonumber(ARGV[5]) end
save(ttl)
return s
`;

// KEYS: breakers. Returns per key { state, ms until an open breaker's cooldown ends (else 0) }.
const READ = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i, key in ipairs(KEYS) do
  local h = redis.call('HMGET', key, 's', 'ou')
  local s, ou = tonumber(h[1]) or 0, tonumber(h[2]) or 0
  local left = 0
  if s == 2 and ou > now then left = ou - now end
  out[i] = {s, left}
end
return out
`;

/** The Redis key of one provider's breaker in one deployment (`keyPrefix`: the topic prefix). */
export function circuitKey(keyPrefix: string, channel: string, provider: string): string {
  return `${keyPrefix}herald:cb:${channel}:${provider}`;
}

/** A breaker as read, not moved: its state and, when open, how long until a probe may go. */
export interface CircuitReading {
  state: CircuitState;
  retryInMs: number;
}

/** Reads breakers without moving them, in one round trip (an open one past its cooldown still reads open until a send probes it). */
export async function readCircuits(redis: Redis, keys: readonly string[]): Promise<CircuitReading[]> {
  if (keys.length === 0) return [];
  const rows = (await redis.eval(READ, keys.length, ...keys)) as Array<[number, number]>;
  return rows.map(([state, retryInMs]) => ({ state: STATES[state] ?? "closed", retryInMs }));
}

export interface SharedBreakerStore {
  admit(key: string): Promise<Admission>;
  record(key: string, ok: boolean, probe: boolean): Promise<CircuitState>;
}

export function createSharedBreakerStore(redis: Redis, config: BreakerConfig): SharedBreakerStore {
  const ttlMs = 2 * (config.windowMs + config.cooldownMs + config.probeLeaseMs);
  return {
    async admit(key) {
      const [state, allowed, probe, retryInMs] = (await redis.eval(ADMIT, 1, key, config.probeLeaseMs, ttlMs)) as number[];
      return { state: STATES[state ?? 0] ?? "closed", allowed: allowed === 1, probe: probe === 1, retryInMs: retryInMs ?? 0 };
    },
    async record(key, ok, probe) {
      const state = (await redis.eval(RECORD, 1, key, ok ? 1 : 0, probe ? 1 : 0, config.failures, config.windowMs, config.cooldownMs, ttlMs)) as number;
      return STATES[state] ?? "closed";
    },
  };
}
