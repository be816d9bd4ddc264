package redis

// consumeSrc is the one script the consume socket runs (see doc.go,
// "Consuming"). In one atomic step it
//
//  1. finds the messages a lost reply had handed over (recovery): when
//     ARGV[5] is the sequence number of the last call whose reply arrived
//     and the delivering hash (KEYS[4]) was written by a later call (whose
//     reply was lost), it returns the records still in the unacked hash of
//     the tags that call handed over;
//  2. records the messages BLMOVE moved into the processing list (KEYS[3]):
//     those the client already delivered under the tags it passes (ARGV
//     pairs sha1-of-bytes, tag; an empty tag: already acked, not recorded),
//     and the others (a BLMOVE reply that never arrived) under the
//     envelope's tag, returned for delivery; the list is then emptied;
//  3. pops up to N messages from the list keys (KEYS[5..]) in the order
//     given (Kombu's BRPOP order, the keys that may hold messages), each
//     key until it is empty, and records each message (HSET unacked, ZADD
//     unacked_index, as popSrc);
//  4. deletes the records of the acknowledged tags (ARGV), after writing
//     the new ones, so that an ack of a message recorded in step 2 lands;
//  5. writes, when it hands any message over, the delivering hash: field
//     "" = this call's sequence number, then tag -> list key for every
//     message of its reply, so that a reply lost on the wire is found
//     again by step 1 of the next call.
//
// It reads no list key: with CLIENT TRACKING in OPTIN mode nothing the
// script touches is tracked (on Redis 7.0 every read in a script would
// track all of the script's keys), and the client re-arms the keys it
// needs with an EXISTS afterwards (pump.go). Record format, tag rules, the
// WRONGTYPE handling of list keys and the index conversion are popSrc's
// (lua.go).
//
//	KEYS[1] unacked, KEYS[2] unacked_index, KEYS[3] processing list,
//	KEYS[4] delivering hash, KEYS[5..] list keys
//	ARGV[1]  N (at most 1000)        ARGV[2] zset score (whole seconds)
//	ARGV[3]  "1": write records       ARGV[4] this call's sequence number
//	ARGV[5]  the last sequence number whose reply arrived, to recover
//	         what later calls handed over; "" not to look
//	ARGV[6]  the list key the processing list's messages came from
//	ARGV[7]  A, the number of acked tags   ARGV[8] B, the number of pairs
//	ARGV[9]  the delivering hash's time to live in ms ("" for none): a
//	         consumer without a lease (a cluster's node sockets) that dies
//	         leaves no hash behind for good
//	ARGV[10 .. 9+A]     acked tags
//	ARGV[10+A .. ]      B pairs: sha1 hex of a message's bytes, its tag
//
// Reply: {last, rem, out, recovered}. last is the 1-based index among the
// list keys of the last key visited (0: none); rem is 0 when that key was
// left empty, -1 when the script stopped there with N reached. Every key
// before last was left empty. out is a flat array of triples: index in
// KEYS (0 for the processing list, negative for a key skipped with its
// error), envelope, tag. recovered is a flat array of triples: list key,
// unacked record, tag.
const consumeSrc = luaRecords + `
local n = tonumber(ARGV[1])
local rec = ARGV[3] == '1'
local nacks = tonumber(ARGV[7])
local npairs = tonumber(ARGV[8])
if n > 1000 then
  return redis.error_reply('ERR kombu-go consume script: at most 1000 messages a call')
end
if rec then
  local bad = wrongTypes(KEYS[1], KEYS[2], 'consume script')
  if bad then return bad end
end
local out, recovered = {}, {}
local recs, idx = {}, {}
local function take(at, raw, given)
  if given == '' then return end
  local tag, elem, ex, rk = '', nil, nil, nil
  if rec then
    tag, elem, ex, rk = describe(raw)
    if given then tag = given end
    addRecord(recs, idx, ARGV[2], tag, elem, ex, rk)
  end
  if not given then
    out[#out + 1] = at
    out[#out + 1] = raw
    out[#out + 1] = tag
  end
end
if ARGV[5] ~= '' then
  local ds = redis.call('HGET', KEYS[4], '')
  if ds and tonumber(ds) > tonumber(ARGV[5]) then
    local all = redis.call('HGETALL', KEYS[4])
    for i = 1, #all, 2 do
      if all[i] ~= '' then
        local r = redis.call('HGET', KEYS[1], all[i])
        if r then
          recovered[#recovered + 1] = all[i + 1]
          recovered[#recovered + 1] = r
          recovered[#recovered + 1] = all[i]
        end
      end
    end
  end
end
if rec then
  local given = {}
  local base = 9 + nacks
  for i = 1, npairs do
    given[ARGV[base + 2 * i - 1]] = ARGV[base + 2 * i]
  end
  local items = redis.call('LRANGE', KEYS[3], 0, -1)
  for j = #items, 1, -1 do
    take(0, items[j], given[redis.sha1hex(items[j])])
  end
  if #items > 0 then redis.call('DEL', KEYS[3]) end
end
local last, rem = 0, 0
if n > 0 then
  for i = 5, #KEYS do
    rem = 0
    while n > 0 do
      local raw = redis.pcall('RPOP', KEYS[i])
      if type(raw) == 'table' and raw.err then
        out[#out + 1] = -i
        out[#out + 1] = raw.err
        out[#out + 1] = ''
        break
      elseif not raw then
        break
      end
      take(i, raw, nil)
      n = n - 1
      if n == 0 then rem = -1 end
    end
    last = i - 4
    if n == 0 then break end
  end
end
writeRecords(KEYS[1], KEYS[2], recs, idx)
local a = 10
while a <= 9 + nacks do
  local b = math.min(a + 999, 9 + nacks)
  redis.call('ZREM', KEYS[2], unpack(ARGV, a, b))
  redis.call('HDEL', KEYS[1], unpack(ARGV, a, b))
  a = b + 1
end
if rec and (#out > 0 or #recovered > 0) then
  local h = {'', ARGV[4]}
  for j = 1, #out, 3 do
    if out[j] >= 0 then
      local key = ARGV[6]
      if out[j] > 0 then key = KEYS[out[j]] end
      h[#h + 1] = out[j + 2]
      h[#h + 1] = key
    end
  end
  for j = 1, #recovered, 3 do
    h[#h + 1] = recovered[j + 2]
    h[#h + 1] = recovered[j]
  end
  redis.call('DEL', KEYS[4])
  redis.call('HSET', KEYS[4], unpack(h))
  if ARGV[9] ~= '' then redis.call('PEXPIRE', KEYS[4], ARGV[9]) end
end
return {last, rem, out, recovered}
`

// convertSrc turns the processing list of a consumer whose lease expired
// into unacked records (run by the visibility sweep of any live consumer;
// see doc.go, "Consuming"). It does nothing when the lease was renewed
// meanwhile. Each message is recorded under its envelope's tag (popSrc's
// rules) with the given score, the owner's last sign of life, so the
// visibility sweep restores it visibility_timeout after that; the
// processing list and the delivering hash are deleted and the consumer
// leaves the registry.
//
//	KEYS[1] unacked, KEYS[2] unacked_index, KEYS[3] the registry zset,
//	KEYS[4] the processing list, KEYS[5] the delivering hash
//	ARGV[1] the consumer id, ARGV[2] now (Unix ms; "" to convert even a
//	live lease: its owner leaving), ARGV[3] the score
//
// Reply: the number of messages recorded, or -1 when the lease is alive.
const convertSrc = luaRecords + `
local exp = redis.call('ZSCORE', KEYS[3], ARGV[1])
if ARGV[2] ~= '' and exp and tonumber(exp) > tonumber(ARGV[2]) then return -1 end
local bad = wrongTypes(KEYS[1], KEYS[2], 'convert script')
if bad then return bad end
local items = redis.call('LRANGE', KEYS[4], 0, -1)
local recs, idx = {}, {}
for j = #items, 1, -1 do
  local tag, elem, ex, rk = describe(items[j])
  addRecord(recs, idx, ARGV[3], tag, elem, ex, rk)
end
writeRecords(KEYS[1], KEYS[2], recs, idx)
redis.call('DEL', KEYS[4], KEYS[5])
redis.call('ZREM', KEYS[3], ARGV[1])
return #items
`

var (
	consumeSHA = sha1Hex(consumeSrc)
)
