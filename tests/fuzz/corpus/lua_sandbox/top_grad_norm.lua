-- top_grad_norm.lua: train the blocks whose gradients were largest.
-- Blocks never trained yet (grad norm 0) come first, so every block is
-- tried once before the norms decide; ties are broken at random (from the
-- run's seeded stream). ctx.grad_norms[i] is block i-1's norm from the
-- last time it trained.

function sample_layers(ctx)
  local norms = ctx.grad_norms or {}
  local order, key = {}, {}
  for b = 0, ctx.n_layers - 1 do
    local g = norms[b + 1] or 0
    order[#order + 1] = b
    key[b] = { g == 0 and math.huge or g, ctx.random() }
  end
  table.sort(order, function(a, b)
    local ka, kb = key[a], key[b]
    if ka[1] ~= kb[1] then return ka[1] > kb[1] end
    return ka[2] < kb[2]
  end)
  return table.move(order, 1, ctx.gamma, 1, {})
end
