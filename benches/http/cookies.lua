-- Cycles through real session cookies (one per line in $COOKIES), one per request, so 32
-- connections hit many sessions like real visitors do. Each wrk thread walks its own share of
-- the sessions: with one shared list and random start positions, two threads that started
-- close together hit the same sessions at the same moments for the whole run (a visitor
-- sending 2 of 32 concurrent requests), so runs differed by where they happened to start.
local next_id = 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

local mine = {}
local i = 0
function init(args)
  local n = 0
  local threads = tonumber(os.getenv("WRK_THREADS") or "2")
  for line in io.lines(os.getenv("COOKIES")) do
    if n % threads == id then
      mine[#mine + 1] = line
    end
    n = n + 1
  end
  i = math.random(#mine)
end

request = function()
  i = i % #mine + 1
  return wrk.format("GET", nil, { ["Cookie"] = mine[i] })
end
