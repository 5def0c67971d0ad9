-- uniform.lua: the built-in uniform draw, written as a policy.
-- Picks ctx.gamma distinct blocks uniformly without replacement (a partial
-- Fisher-Yates shuffle). ctx.randint draws from the run's seeded stream for
-- this period, the same numbers the built-in mode uses, so this policy
-- returns exactly the sets of `uniform`: a template to start from.

function sample_layers(ctx)
  local perm = {}
  for i = 1, ctx.n_layers do perm[i] = i - 1 end
  for i = 1, ctx.gamma do
    local j = i + ctx.randint(ctx.n_layers - i + 1)
    perm[i], perm[j] = perm[j], perm[i]
  end
  return table.move(perm, 1, ctx.gamma, 1, {})
end
