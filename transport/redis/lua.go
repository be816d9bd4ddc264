package redis

import (
	"crypto/sha1"
	"encoding/hex"
)

// popSrc pops up to N messages from list keys in order and, when asked,
// writes each one's unacked record in the same atomic step, so a message is
// never out of its list without a record (kombu-spec §1.13: the hash value
// is the JSON array [envelope, exchange, routing_key], the zset score the
// delivery time).
//
// Server cost, measured with 100-message pops: the records go in one HSET
// and one ZADD at the end, since a call from Lua costs about a microsecond
// of the server's time and these were two per message. While the index is
// small (or just created) Redis keeps it as a listpack, where an insertion
// walks and copies the whole set; so before a ZADD of more than 16 entries
// into an index that is not a skiplist, the script adds and removes, within
// its atomic step, one member longer than zset-max-listpack-value. Redis
// converts the set and never converts it back (pops that find the index
// empty: 1,240 µs against 970 µs each). Nobody sees the extra member, so
// Kombu's sweep is unaffected; where OBJECT fails the ZADD is plain.
//
// The pops come first: once the script has written, Redis lets it finish
// even past maxmemory, so a server at its memory limit still hands messages
// over with their records (Kombu's consumer keeps consuming there too).
// What would fail the writes after the pops is checked before them: an
// unacked hash or index of another type, and more messages than Lua's
// unpack takes (N is capped at 1000; callers ask for at most maxBatch).
// Both are errors with no message taken.
//
//	KEYS[1]    the unacked hash, KEYS[2] the unacked_index zset
//	KEYS[3]    the marker key (see ARGV[4])
//	KEYS[4..]  the list keys, in the order to try them (Kombu's BRPOP order)
//	ARGV[1]    N, the most messages to return
//	ARGV[2]    the zset score: Unix time in whole seconds (score)
//	ARGV[3]    "1" to write unacked records, "0" not to
//	ARGV[4]    "1" to set the marker key to the tags taken (one per line),
//	           expiring after a minute, when any message was taken: a
//	           caller whose reply is lost finds them there (store.Get)
//
// The reply is a flat array of triples: the index of the list key in KEYS,
// the envelope, and the delivery tag it was recorded under
// ("" when not recording). A key RPOP fails on (WRONGTYPE: not a list) is
// skipped, like an empty one, and reported by the triple -index, the
// error, "": the messages taken from the other keys are still returned
// (failing the script would leave them recorded but never delivered).
// The tag, exchange and routing key are read with cjson; an envelope without a usable tag (not Kombu's) is recorded under
// the SHA-1 of its bytes, with an empty exchange and routing key. Bytes
// that are not JSON are recorded as a JSON string, so that the record stays
// JSON (Kombu's restore_visible would raise on it and abandon its sweep;
// with a string it logs the message and drops it).
const popSrc = luaRecords + `
local n = tonumber(ARGV[1])
local rec = ARGV[3] == '1'
if n > 1000 then
  return redis.error_reply('ERR kombu-go pop script: at most 1000 messages a call')
end
if rec then
  local bad = wrongTypes(KEYS[1], KEYS[2], 'pop script')
  if bad then return bad end
end
local out = {}
local recs, idx = {}, {}
local function take(at, raw)
  local tag = ''
  if rec then
    local elem, ex, rk
    tag, elem, ex, rk = describe(raw)
    addRecord(recs, idx, ARGV[2], tag, elem, ex, rk)
  end
  out[#out + 1] = at
  out[#out + 1] = raw
  out[#out + 1] = tag
  n = n - 1
end
local i = 4
while n > 0 and i <= #KEYS do
  local raw = redis.pcall('RPOP', KEYS[i])
  if type(raw) == 'table' and raw.err then
    out[#out + 1] = -i
    out[#out + 1] = raw.err
    out[#out + 1] = ''
    i = i + 1
  elseif raw then take(i, raw) else i = i + 1 end
end
writeRecords(KEYS[1], KEYS[2], recs, idx)
if ARGV[4] == '1' and #idx > 0 then
  local tags = {}
  for j = 2, #idx, 2 do tags[#tags + 1] = idx[j] end
  redis.call('SET', KEYS[3], table.concat(tags, '\n'), 'PX', 60000)
end
return out
`

// luaRecords are the functions the scripts share to write Kombu's unacked
// records (see popSrc):
//
//   - describe(raw) returns the tag, the record's first element (the
//     envelope, or a JSON string of bytes that are not JSON), the exchange
//     and the routing key; a message without a usable tag gets the SHA-1
//     of its bytes and an empty exchange and routing key;
//   - addRecord queues one record's HSET and ZADD arguments;
//   - writeRecords writes them in one HSET and one ZADD, converting a
//     listpack index to a skiplist first;
//   - wrongTypes returns the error reply when the unacked hash or index is
//     of another type, nil otherwise.
const luaRecords = `
local function str(v)
  if type(v) == 'string' then return v end
  if type(v) == 'number' then return tostring(v) end
  return ''
end
local function describe(raw)
  local tag, ex, rk, elem = '', '', '', raw
  local ok, env = pcall(cjson.decode, raw)
  if not ok then elem = cjson.encode(raw) end
  if ok and type(env) == 'table' and type(env['properties']) == 'table' then
    local p = env['properties']
    tag = str(p['delivery_tag'])
    if type(p['delivery_info']) == 'table' then
      ex = str(p['delivery_info']['exchange'])
      rk = str(p['delivery_info']['routing_key'])
    end
  end
  if tag == '' then
    tag = redis.sha1hex(raw)
    ex, rk = '', ''
  end
  return tag, elem, ex, rk
end
local function addRecord(recs, idx, score, tag, elem, ex, rk)
  recs[#recs + 1] = tag
  recs[#recs + 1] = '[' .. elem .. ', ' .. cjson.encode(ex) .. ', ' .. cjson.encode(rk) .. ']'
  idx[#idx + 1] = score
  idx[#idx + 1] = tag
end
local function writeRecords(hash, index, recs, idx)
  if #recs == 0 then return end
  redis.call('HSET', hash, unpack(recs))
  local ok, enc = pcall(redis.call, 'OBJECT', 'ENCODING', index)
  if #idx > 32 and ok and enc ~= 'skiplist' then
    local big = 'kombu-go: converts the index to a skiplist ' .. string.rep('.', 200)
    redis.call('ZADD', index, 0, big)
    redis.call('ZADD', index, unpack(idx))
    redis.call('ZREM', index, big)
  else
    redis.call('ZADD', index, unpack(idx))
  end
end
local function wrongTypes(hash, index, what)
  local th, tz = redis.call('TYPE', hash)['ok'], redis.call('TYPE', index)['ok']
  if (th ~= 'none' and th ~= 'hash') or (tz ~= 'none' and tz ~= 'zset') then
    return redis.error_reply('WRONGTYPE kombu-go ' .. what .. ': ' .. hash .. ' is a ' .. th ..
      ' and ' .. index .. ' a ' .. tz .. ' (want a hash and a zset); no message taken')
  end
  return nil
end
`

// unlockSrc releases the unacked_mutex only if it still holds our token
// (redis-py's Lock.release).
const unlockSrc = `
local token = redis.call('GET', KEYS[1])
if not token or token ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
`

var popSHA = sha1Hex(popSrc)

func sha1Hex(s string) string {
	sum := sha1.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}
