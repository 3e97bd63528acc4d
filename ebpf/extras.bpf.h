/* The extras maps shared by the feature hooks: two generations, swapped by
 * the agent together with the flow table. */
#ifndef FLOWLENS_EXTRAS_BPF_H
#define FLOWLENS_EXTRAS_BPF_H

#ifndef EXTRAS_ENTRIES
#define EXTRAS_ENTRIES 16384
#endif

/* Allocated as used: most flows have no feature data. */
#define EXTRAS_MAP(name)                                                                           \
    struct {                                                                                       \
        __uint(type, BPF_MAP_TYPE_HASH);                                                           \
        __type(key, struct flow_key);                                                              \
        __type(value, struct flow_extra);                                                          \
        __uint(max_entries, EXTRAS_ENTRIES);                                                       \
        __uint(map_flags, BPF_F_NO_PREALLOC);                                                      \
    } name SEC(".maps")

EXTRAS_MAP(extras_gen0);
EXTRAS_MAP(extras_gen1);

/* Inserted as the initial value of new extras entries. */
const struct flow_extra empty_extra = {};

/* The current generation's extras entry of `id`, created if needed, and
 * stamped with the agent's millisecond clock (no clock helper call). */
static __always_inline struct flow_extra *extra_for(const struct flow_key *id)
{
    __u32 zero = 0;
    struct agent_state *state = bpf_map_lookup_elem(&agent_state, &zero);
    if (!state)
        return 0;
    void *map = state->generation ? (void *)&extras_gen1 : (void *)&extras_gen0;
    struct flow_extra *e = bpf_map_lookup_elem(map, id);
    if (!e) {
        bpf_map_update_elem(map, id, &empty_extra, BPF_NOEXIST);
        e = bpf_map_lookup_elem(map, id);
        if (!e) {
            counter_add(CTR_EXTRAS_FULL, 1);
            return 0;
        }
    }
    e->last_mono_ns = state->clock_ns;
    return e;
}

static __always_inline void extra_mark(struct flow_extra *e, __u32 bits)
{
    if ((e->present & bits) != bits)
        __sync_fetch_and_or(&e->present, bits);
}

#endif
