-- tune-coordinate.lua: a search strategy for `lisa tune --search`: from the
-- default, one tunable at a time, every value of it with the others at the
-- best so far; two sweeps. It measures sum(space sizes) variants per sweep
-- instead of their product (attention_forward: 7 instead of 12).
--
-- lisa tune calls the returned function once per kernel with
--   space   = {kernel = "attention_forward",
--              params = {BQ = {16, 32, 64, 128}, THREADS = {64, 128, 256}},
--              default = {BQ = 32, THREADS = 128}}
--   measure = function(point) -> milliseconds, if the variant (point's
--             values, the default's for any it leaves out) checked out
--             against the CPU backend; else nil and why ("wrong",
--             "rejected", "budget", "not in the space: ...").
-- lisa tune keeps what was measured and stores the fastest right variant.
return function(space, measure)
  local best, best_ms = {}, nil
  for name, value in pairs(space.default) do best[name] = value end
  best_ms = measure(best)
  local names = {}
  for name in pairs(space.params) do names[#names + 1] = name end
  table.sort(names) -- pairs() has no order; the sweeps should have one
  for _ = 1, 2 do
    for _, name in ipairs(names) do
      for _, value in ipairs(space.params[name]) do
        local point = {}
        for k, v in pairs(best) do point[k] = v end
        point[name] = value
        local ms, why = measure(point)
        if why == "budget" then return end
        if ms and (not best_ms or ms < best_ms) then best, best_ms = point, ms end
      end
    end
  end
end
