package io.pmcache.cli;

import io.pmcache.admin.AdminServer;
import io.pmcache.admin.Json;
import java.io.IOException;
import java.net.ConnectException;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.Map;

/** Talks to a running server's admin endpoint ({@code pmcache serve --admin}). */
final class AdminClient {
    /** The help of a command's {@code --admin HOST:PORT} (the endpoint it talks to). */
    static final String OPTION_HELP = "Admin endpoint of a running `pmcache serve --admin` (a bare PORT means 127.0.0.1).";

    private final String base;
    private final String spec;
    private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    AdminClient(String spec) {
        this.spec = spec;
        InetSocketAddress a = AdminServer.parseAddress(spec);
        String host = a.getHostString();
        this.base = "http://" + (host.contains(":") ? "[" + host + "]" : host) + ":" + a.getPort();
    }

    /** A client for {@code --admin spec}; a spec that is no address is a usage error (exit 2). */
    static AdminClient of(picocli.CommandLine.Model.CommandSpec command, String spec) {
        Usage.check(command, "--admin", () -> AdminServer.parseAddress(spec));
        return new AdminClient(spec);
    }

    record Response(int code, String body) {
        /** The server's reason for a refusal: the {@code error} of a JSON answer, else the whole body. */
        String reason() {
            try {
                if (Json.parse(body) instanceof Map<?, ?> m && m.get("error") != null) {
                    return String.valueOf(m.get("error"));
                }
            } catch (IllegalArgumentException notJson) {
                // the raw body is the reason
            }
            return body.strip();
        }
    }

    /**
     * Posts {@code body} to {@code path} and returns the answer; a refusal throws an IOException
     * "the server refused WHAT (HTTP code): reason".
     */
    Response postOrThrow(String path, String body, String what) throws IOException {
        Response r = post(path, body);
        if (r.code() != 200) {
            throw new IOException("the server refused " + what + " (HTTP " + r.code() + "): " + r.reason());
        }
        return r;
    }

    Response get(String path) throws IOException {
        return send(HttpRequest.newBuilder(URI.create(base + path)).GET());
    }

    Response post(String path, String body) throws IOException {
        return send(HttpRequest.newBuilder(URI.create(base + path)).POST(HttpRequest.BodyPublishers.ofString(body)));
    }

    /**
     * Posts {@code body} and hands each line of the answer to {@code line} as it arrives (a long
     * job's progress); no time limit once the answer has begun. Returns the status code.
     */
    int postLines(String path, String body, java.util.function.Consumer<String> line) throws IOException {
        HttpRequest req = HttpRequest.newBuilder(URI.create(base + path))
                .POST(HttpRequest.BodyPublishers.ofString(body)).build();
        try {
            HttpResponse<java.util.stream.Stream<String>> r = http.send(req, HttpResponse.BodyHandlers.ofLines());
            try (java.util.stream.Stream<String> lines = r.body()) {
                lines.forEach(line);
            }
            return r.statusCode();
        } catch (ConnectException e) {
            throw new IOException("cannot reach the admin endpoint at " + base + " (--admin " + spec
                    + "): connection refused; is `pmcache serve --admin " + spec + "` running?");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while talking to " + base);
        } catch (IOException | java.io.UncheckedIOException e) {
            throw new IOException("cannot talk to the admin endpoint at " + base + ": " + e);
        }
    }

    private Response send(HttpRequest.Builder b) throws IOException {
        try {
            HttpResponse<String> r = http.send(b.timeout(Duration.ofSeconds(30)).build(),
                    HttpResponse.BodyHandlers.ofString());
            return new Response(r.statusCode(), r.body());
        } catch (ConnectException e) {
            throw new IOException("cannot reach the admin endpoint at " + base + " (--admin " + spec
                    + "): connection refused; is `pmcache serve --admin " + spec + "` running?");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while talking to " + base);
        } catch (IOException e) {
            throw new IOException("cannot talk to the admin endpoint at " + base + ": " + e);
        }
    }
}
