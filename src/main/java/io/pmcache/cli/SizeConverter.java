package io.pmcache.cli;

import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.TypeConversionException;

/** Byte sizes with binary suffixes: {@code 4096}, {@code 512K}, {@code 512M}, {@code 4G}, {@code 1T} (also KiB, MB, ...). */
public final class SizeConverter implements ITypeConverter<Long> {

    @Override
    public Long convert(String value) {
        return parse(value);
    }

    public static long parse(String value) {
        String v = value.trim();
        int i = 0;
        while (i < v.length() && Character.isDigit(v.charAt(i))) {
            i++;
        }
        if (i == 0) {
            throw bad(value);
        }
        long n;
        try {
            n = Long.parseLong(v.substring(0, i));
        } catch (NumberFormatException e) {
            throw bad(value);
        }
        String unit = v.substring(i).trim().toUpperCase(java.util.Locale.ROOT);
        int shift = switch (unit) {
            case "", "B" -> 0;
            case "K", "KB", "KIB" -> 10;
            case "M", "MB", "MIB" -> 20;
            case "G", "GB", "GIB" -> 30;
            case "T", "TB", "TIB" -> 40;
            default -> throw bad(value);
        };
        if (n > (Long.MAX_VALUE >> shift)) {
            throw new TypeConversionException("size '" + value + "' is too large");
        }
        return n << shift;
    }

    private static TypeConversionException bad(String value) {
        return new TypeConversionException("'" + value
                + "' is not a size; use a number of bytes with an optional binary suffix, e.g. 512M, 4G");
    }

    /** 1073741824 -> "1 GiB", 1536 -> "1.5 KiB". */
    public static String human(long bytes) {
        String[] units = {"B", "KiB", "MiB", "GiB", "TiB"};
        double v = bytes;
        int u = 0;
        while (v >= 1024 && u < units.length - 1) {
            v /= 1024;
            u++;
        }
        return (v == Math.rint(v) ? String.valueOf((long) v) : String.format(java.util.Locale.ROOT, "%.1f", v))
                + " " + units[u];
    }
}
