package io.pmcache.docs;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.lang.reflect.Method;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.tools.JavaCompiler;
import javax.tools.ToolProvider;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The complete program in docs/library.md compiles and runs as printed: the test takes the java
 * block that declares a public class straight from the document (so the two cannot drift),
 * compiles it against the library with javax.tools, and runs it twice in a fresh directory: the
 * first run creates the cache, the second opens and replays it.
 */
class LibraryDocTest {
    private static final Pattern JAVA_BLOCK = Pattern.compile("```java\\n(.*?)```", Pattern.DOTALL);
    private static final Pattern PUBLIC_CLASS = Pattern.compile("public class (\\w+)");

    @TempDir
    Path dir;

    @Test
    void theCompleteProgramCompilesAndRuns() throws Exception {
        String doc = Files.readString(Path.of("docs/library.md"));
        String source = null;
        String className = null;
        for (Matcher m = JAVA_BLOCK.matcher(doc); m.find(); ) {
            Matcher c = PUBLIC_CLASS.matcher(m.group(1));
            if (c.find()) {
                source = m.group(1);
                className = c.group(1);
                break;
            }
        }
        assertThat(source).as("docs/library.md has a java block with a public class").isNotNull();

        Path src = dir.resolve("src");
        Path classes = dir.resolve("classes");
        Files.createDirectories(src);
        Files.createDirectories(classes);
        Path file = src.resolve(className + ".java");
        Files.writeString(file, source);
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        ByteArrayOutputStream diagnostics = new ByteArrayOutputStream();
        int rc = javac.run(null, diagnostics, diagnostics, "-Xlint:all", "-Werror", "-cp",
                System.getProperty("java.class.path"), "-d", classes.toString(), file.toString());
        assertThat(rc).as(diagnostics.toString()).isZero();

        Path data = dir.resolve("hello-data");
        try (URLClassLoader loader = new URLClassLoader(new URL[] {classes.toUri().toURL()},
                getClass().getClassLoader())) {
            Method main = loader.loadClass(className).getMethod("main", String[].class);
            for (int run = 1; run <= 2; run++) {
                String out = runCapturingStdout(main, data.toString());
                List<String> lines = out.lines().toList();
                assertThat(lines).as("run " + run).contains("hello, pmcache");
                assertThat(lines).as("run " + run).anyMatch(l -> l.endsWith("bytes not yet written back"));
            }
        }
        assertThat(Files.size(data.resolve("cache.img"))).isEqualTo(128L << 20);
        assertThat(Files.size(data.resolve("disk.img"))).isEqualTo(1L << 30);
    }

    private static String runCapturingStdout(Method main, String arg) throws Exception {
        PrintStream saved = System.out;
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        System.setOut(new PrintStream(buf, true, StandardCharsets.UTF_8));
        try {
            main.invoke(null, (Object) new String[] {arg});
        } finally {
            System.setOut(saved);
        }
        return buf.toString(StandardCharsets.UTF_8);
    }
}
