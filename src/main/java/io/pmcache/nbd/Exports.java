package io.pmcache.nbd;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The exports a server offers, by name; exports come and go while the server runs (a volume
 * created or removed through the admin endpoint). A connection looks its export up once, in the
 * handshake; what it chose stays its own until it ends.
 *
 * <p>The empty name (the NBD "default export") answers with the {@link #defaultName default
 * export} when one is set, else with the only export when there is exactly one, else with none.
 */
final class Exports {
    private final Map<String, Export> byName = new LinkedHashMap<>();
    private String defaultName;

    /** Adds {@code e}; refused when its name is taken. {@code isDefault}: it answers to the empty name. */
    synchronized void add(Export e, boolean isDefault) {
        if (e.name().isEmpty()) {
            throw new IllegalArgumentException("an export needs a name");
        }
        if (byName.putIfAbsent(e.name(), e) != null) {
            throw new IllegalArgumentException("an export named '" + e.name() + "' exists already");
        }
        if (isDefault) {
            defaultName = e.name();
        }
    }

    /** Removes the export named {@code name}; returns it, or null when there is none. */
    synchronized Export remove(String name) {
        Export e = byName.remove(name);
        if (name.equals(defaultName)) {
            defaultName = null;
        }
        return e;
    }

    /** The export {@code requested} names (see the class comment for the empty name), or null. */
    synchronized Export find(String requested) {
        if (!requested.isEmpty()) {
            return byName.get(requested);
        }
        if (defaultName != null) {
            return byName.get(defaultName);
        }
        return byName.size() == 1 ? byName.values().iterator().next() : null;
    }

    /** True while {@code e} itself is offered (not removed, nor replaced by another of its name). */
    synchronized boolean offers(Export e) {
        return byName.get(e.name()) == e;
    }

    /** Every export, in the order they were added (NBD_OPT_LIST). */
    synchronized List<Export> all() {
        return new ArrayList<>(byName.values());
    }
}
