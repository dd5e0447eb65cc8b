//! The Lua scripts that make an append atomic in Redis: dedup check, seq by INCR, XADD with id = seq, retention.

/// Retention by count (`ARGV[4]`, 0: none) and by age in ms (`ARGV[5]`, 0:
/// none, against the time `ARGV[3]`) on the stream `KEYS[2]`. Stream ids are
/// `seq-0`, so a count limit is one `XTRIM MINID`; the age limit looks at the
/// oldest entries' `t` field, 64 at a time.
const RETAIN: &str = r#"
local function retain(seq, now, maxlen, maxage)
  if maxlen > 0 and seq > maxlen then
    redis.call('XTRIM', KEYS[2], 'MINID', (seq - maxlen + 1) .. '-0')
  end
  if maxage > 0 then
    local cutoff = now - maxage
    local old = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 64)
    local keep = nil
    for _, e in ipairs(old) do
      local f = e[2]
      local t = nil
      for i = 1, #f, 2 do if f[i] == 't' then t = tonumber(f[i + 1]) end end
      if t == nil or t >= cutoff then keep = e[1]; break end
    end
    if keep then
      redis.call('XTRIM', KEYS[2], 'MINID', keep)
    elseif #old > 0 then
      local last = tonumber(string.match(old[#old][1], '^(%d+)'))
      redis.call('XTRIM', KEYS[2], 'MINID', (last + 1) .. '-0')
    end
  end
end
"#;

/// `KEYS`: seq counter, stream, dedup key (`''`: none). `ARGV`: message id,
/// payload, now (ms), max_len, max_age (ms), dedup TTL (s).
/// Returns `{duplicate (0/1), "seq:id"}`.
pub(crate) fn append() -> String {
    format!(
        "{RETAIN}{}",
        r#"
local dedup = KEYS[3]
if dedup ~= '' then
  local seen = redis.call('GET', dedup)
  if seen then return {1, seen} end
end
local seq = redis.call('INCR', KEYS[1])
redis.call('XADD', KEYS[2], seq .. '-0', 'i', ARGV[1], 'p', ARGV[2], 't', ARGV[3])
retain(seq, tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]))
local out = seq .. ':' .. ARGV[1]
if dedup ~= '' then redis.call('SET', dedup, out, 'EX', ARGV[6]) end
return {0, out}
"#
    )
}

/// `KEYS`: seq counter, stream. `ARGV`: now (ms), max_len, max_age (ms).
/// Returns the stream's length after trimming.
pub(crate) fn trim() -> String {
    format!(
        "{RETAIN}{}",
        r#"
local seq = tonumber(redis.call('GET', KEYS[1]) or '0')
retain(seq, tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
return redis.call('XLEN', KEYS[2])
"#
    )
}
