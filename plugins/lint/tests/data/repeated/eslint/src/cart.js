export function total(items) {
  let sum = 0
  for (const item of items) {
    console.log("adding", item)
    sum += item.price
  }
  return sum
}

export function count(items) {
  let sum = 0
  for (const item of items) {
    console.log("adding", item)
    sum += 1
  }
  return sum
}

export function unused(items) {
  const first = items[0]
  const last = items[items.length - 1]
  return items.length
}
