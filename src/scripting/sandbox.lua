-- The sandbox scripts run in, as Redis 7's: the globals, every library table,
-- the string metatable and the globals' metatable are read-only, and an
-- assignment, `rawset`, `table.insert` or `setmetatable` on them fails with
-- "Attempt to modify a readonly table".
--
-- Lua 5.1 has no read-only tables (Redis patches its Lua for them), so scripts
-- see proxies: an empty table whose metatable reads through to the real one
-- (`__index`) and refuses writes (`__newindex`). The real tables are reachable
-- only through the upvalues below and the replaced functions. The base
-- functions that see past metatables (`rawget`, `rawset`, `next`, `pairs`,
-- `getmetatable`, `setmetatable`, `table.insert`, `table.foreach`) are
-- replaced by versions that look through a proxy to its table and refuse to
-- write into it, with the argument errors of the originals. (`ipairs`,
-- `unpack` and `#` read only the array part, empty in every library table as
-- in every proxy, so they stay.)
--
-- `table.foreach` is replaced here, in Lua; the other replacements (and
-- Redis's `pcall`) are C functions in `sandbox.rs`, and arrive as `base`.
--
-- Run once, with the real globals, after the libraries are installed, with
-- the tables `real_of` and `shown` (see below), `base` and, for the functions'
-- VM, `register` (redis.register_function). Returns the proxy of the globals
-- (what scripts run in), the real globals (where KEYS and ARGV are set for
-- each run) and, with `register`, what a library's code sees as its globals
-- while it loads: only `redis.register_function`, `redis.log` and the log
-- levels, any other name an error, as Redis's load-time API.

local G = _G
local type, select, error, tostring, tonumber = type, select, error, tostring, tonumber
local raw_getmetatable, raw_setmetatable = getmetatable, setmetatable
local raw_set, raw_next, raw_ipairs = rawset, next, ipairs
local raw_foreach = table.foreach

local READONLY = 'Attempt to modify a readonly table'

-- real_of: proxy -> the table it stands for; proxy_of: back.
-- shown: a metatable of ours -> what `getmetatable` shows instead (false: nothing).
local real_of, shown, base, register = ...
local proxy_of = {}

local function refuse()
  error(READONLY, 2)
end

-- luaL_argerror's text.
local function bad(i, name, msg)
  return 'bad argument #' .. i .. " to '" .. name .. "' (" .. msg .. ')'
end

-- luaL_typename of argument i of n.
local function got(n, i, v)
  if n < i then
    return 'no value'
  end
  return type(v)
end

local function table_expected(n, t, name)
  return bad(1, name, 'table expected, got ' .. got(n, 1, t))
end

local function foreach_(...)
  local n, t, f = select('#', ...), ...
  if type(t) ~= 'table' then
    error(table_expected(n, t, 'foreach'), 2)
  end
  if type(f) ~= 'function' then
    error(bad(2, 'foreach', 'function expected, got ' .. got(n, 2, f)), 2)
  end
  local real = real_of[t]
  if real then
    for k, v in raw_next, real do
      local r = f(k, v)
      if r ~= nil then
        return r
      end
    end
    return
  end
  return raw_foreach(t, f)
end

-- Redis's redis.error_reply: "-CODE message" or "message" (code ERR), the
-- message trimmed of CR and LF, as a table {err = "CODE message"}.
local function error_table(s)
  local code, msg
  if s:sub(1, 1) == '-' then
    local space = s:find(' ', 1, true)
    if space then
      code, msg = s:sub(2, space - 1), s:sub(space + 1)
    else
      code, msg = 'ERR', s:sub(2)
    end
  else
    code, msg = 'ERR', s
  end
  msg = msg:gsub('^[\r\n]+', ''):gsub('[\r\n]+$', '')
  return { err = code .. ' ' .. msg }
end

local function string_arg(n, s)
  -- Redis reads the argument as a C string: it ends at the first NUL.
  if n == 1 and type(s) == 'string' then
    return (s:match('^[^%z]*'))
  end
end

local redis = G.redis
function redis.error_reply(...)
  local s = string_arg(select('#', ...), ...)
  if not s then
    return error_table('wrong number or type of arguments')
  end
  if s:sub(1, 1) ~= '-' then
    s = '-' .. s
  end
  return error_table(s)
end
function redis.status_reply(...)
  local s = string_arg(select('#', ...), ...)
  if not s then
    return error_table('wrong number or type of arguments')
  end
  return { ok = s }
end

for name, f in raw_next, base do
  if name == 'insert' then
    G.table.insert = f
  else
    raw_set(G, name, f)
  end
end
G.table.foreach = foreach_
-- What Redis 7 hides.
for _, name in raw_ipairs({ 'getfenv', 'setfenv', 'newproxy', 'print', 'loadfile', 'dofile' }) do
  raw_set(G, name, nil)
end

local function protect(t)
  local p = proxy_of[t]
  if p then
    return p
  end
  p = {}
  proxy_of[t], real_of[p] = p, t
  for k, v in raw_next, t do
    if type(v) == 'table' and not real_of[v] then
      raw_set(t, k, protect(v))
    end
  end
  local mt = { __index = t, __newindex = refuse }
  shown[mt] = false
  raw_setmetatable(p, mt)
  return p
end

local function missing(_, k)
  error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
end
local globals_mt = { __index = missing }
raw_setmetatable(G, globals_mt)
local scripts_g = protect(G)
shown[raw_getmetatable(scripts_g)] = protect(globals_mt)

-- Methods on strings read through the string metatable's __index; point it at
-- the proxy, so `getmetatable('').__index` is the read-only `string`.
local string_mt = raw_getmetatable('')
raw_set(string_mt, '__index', G.string)
shown[string_mt] = protect(string_mt)

local library_api
if register then
  local lib_redis = { register_function = register, log = G.redis.log }
  for _, level in raw_ipairs({ 'LOG_DEBUG', 'LOG_VERBOSE', 'LOG_NOTICE', 'LOG_WARNING' }) do
    lib_redis[level] = G.redis[level]
  end
  raw_setmetatable(lib_redis, { __index = missing })
  local lib_g = { redis = lib_redis }
  raw_setmetatable(lib_g, { __index = missing })
  library_api = protect(lib_g)
end

return scripts_g, G, library_api
