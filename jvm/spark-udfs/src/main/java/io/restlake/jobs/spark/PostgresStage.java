package io.restlake.jobs.spark;

import java.io.IOException;
import java.io.InputStream;
import java.lang.reflect.InvocationTargetException;
import java.sql.Connection;
import java.sql.Driver;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Properties;
import org.apache.spark.TaskContext;
import org.apache.spark.api.java.function.FlatMapFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.unsafe.Platform;
import org.apache.spark.unsafe.types.UTF8String;

/**
 * Each partition of a micro-batch COPYs its rows into a Postgres staging table from the executor
 * that holds it, so the rows never pass through the driver (the Python driver used to collect the
 * whole batch as Arrow and COPY it itself: a tenth of the JVM's time, two core-seconds of Python
 * and a few hundred MiB of the driver's memory per 100,000 records of 1 KB).
 *
 * <p>The caller creates the staging table and merges it into the target in one transaction on the
 * driver; this class only fills it. A partition's rows land in one transaction that first deletes
 * whatever an earlier attempt of the same partition left (a task retried after its commit), under
 * an advisory lock on (table, partition) so that two concurrent attempts cannot both land.
 *
 * <p>The input's columns, by position: external_id, idempotency_key, content_hash, version (all
 * strings, version nullable), fetched_at as epoch microseconds (long), payload (JSON text),
 * kafka_topic (nullable string), kafka_partition (nullable int), kafka_offset (nullable long), and
 * source (string) last: a row of another source is counted and not written, and the driver refuses
 * the batch. The staging table's columns are {@code part} and those nine, in that order.
 *
 * <p>The JDBC driver is reached by reflection, so this compiles against Spark's jars alone; it
 * must be on the classpath at run time (the spark bundle's org.postgresql:postgresql).
 */
public final class PostgresStage {
  private static final String DRIVER = "org.postgresql.Driver";
  private static final char SEP = '\u001f';
  // Bytes encoded ahead of the COPY stream at most; one row may exceed it.
  private static final int CHUNK = 1 << 20;

  private PostgresStage() {}

  /**
   * Fill {@code table} (a quoted, schema-qualified name) with {@code rows}. Returns {rows written,
   * rows of another source, that first row's source, its external_id} (empty strings when none).
   */
  public static String[] copy(
      Dataset<Row> rows, String url, Properties properties, String table, String source) {
    Copier copier = new Copier(url, properties, table, source);
    List<String> parts = rows.queryExecution().toRdd().toJavaRDD().mapPartitions(copier).collect();
    long written = 0;
    long foreign = 0;
    String firstSource = "";
    String firstId = "";
    for (String part : parts) {
      String[] fields = part.split(String.valueOf(SEP), -1);
      written += Long.parseLong(fields[0]);
      long other = Long.parseLong(fields[1]);
      if (other > 0 && foreign == 0) {
        firstSource = fields[2];
        firstId = fields[3];
      }
      foreign += other;
    }
    return new String[] {Long.toString(written), Long.toString(foreign), firstSource, firstId};
  }

  static final class Copier implements FlatMapFunction<Iterator<InternalRow>, String> {
    private static final long serialVersionUID = 1L;
    private final String url;
    private final Properties properties;
    private final String table;
    private final String source;

    Copier(String url, Properties properties, String table, String source) {
      this.url = url;
      this.properties = properties;
      this.table = table;
      this.source = source;
    }

    @Override
    public Iterator<String> call(Iterator<InternalRow> rows) throws Exception {
      int part = TaskContext.getPartitionId();
      RowStream stream = new RowStream(rows, UTF8String.fromString(source));
      try (Connection conn = connect()) {
        conn.setAutoCommit(false);
        try (PreparedStatement lock =
            conn.prepareStatement("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))")) {
          lock.setString(1, table + SEP + part);
          lock.execute();
        }
        try (PreparedStatement delete =
            conn.prepareStatement("DELETE FROM " + table + " WHERE part = ?")) {
          delete.setInt(1, part);
          delete.executeUpdate();
        }
        stream.part = part;
        copyIn(
            conn,
            "COPY "
                + table
                + " (part, external_id, idempotency_key, content_hash, version, fetched_at_us,"
                + " payload, kafka_topic, kafka_partition, kafka_offset) FROM STDIN",
            stream);
        conn.commit();
      } catch (SQLException exc) {
        throw staged(exc);
      }
      List<String> out = new ArrayList<>(1);
      out.add(
          Long.toString(stream.written)
              + SEP
              + stream.foreign
              + SEP
              + nonNull(stream.foreignSource)
              + SEP
              + nonNull(stream.foreignId));
      return out.iterator();
    }

    private Connection connect() throws Exception {
      ClassLoader loader = Thread.currentThread().getContextClassLoader();
      if (loader == null) {
        loader = PostgresStage.class.getClassLoader();
      }
      Driver driver =
          (Driver) Class.forName(DRIVER, true, loader).getDeclaredConstructor().newInstance();
      Connection conn = driver.connect(url, properties);
      if (conn == null) {
        throw new SQLException("the Postgres JDBC driver refused the staging URL", "08001");
      }
      return conn;
    }

    private static void copyIn(Connection conn, String sql, InputStream data) throws Exception {
      Class<?> pgConnection = Class.forName("org.postgresql.PGConnection", true, conn.getClass().getClassLoader());
      Object pg = conn.unwrap(pgConnection);
      Object api = pgConnection.getMethod("getCopyAPI").invoke(pg);
      try {
        api.getClass().getMethod("copyIn", String.class, InputStream.class, int.class).invoke(api, sql, data, CHUNK);
      } catch (InvocationTargetException exc) {
        Throwable cause = exc.getCause();
        if (cause instanceof SQLException) {
          throw (SQLException) cause;
        }
        if (cause instanceof IOException) {
          throw new SQLException("reading the partition's rows failed: " + cause, "58000", cause);
        }
        throw exc;
      }
    }

    // The SQLSTATE goes first in the message, where the driver reads it to tell a transient
    // failure from a permanent one; the server's text follows, never the URL or the user.
    private static RuntimeException staged(SQLException exc) {
      String state = exc.getSQLState() == null ? "" : exc.getSQLState();
      return new IllegalStateException(
          "restlake-postgres-stage SQLSTATE=" + state + ": " + exc.getMessage(), exc);
    }

    private static String nonNull(String text) {
      return text == null ? "" : text.replace(SEP, ' ');
    }
  }

  /** The partition's rows in COPY's text format, encoded a chunk at a time as COPY reads them. */
  static final class RowStream extends InputStream {
    private final Iterator<InternalRow> rows;
    private final UTF8String source;
    private byte[] buffer = new byte[CHUNK + 4096];
    private int length;
    private int position;
    int part;
    long written;
    long foreign;
    String foreignSource;
    String foreignId;

    RowStream(Iterator<InternalRow> rows, UTF8String source) {
      this.rows = rows;
      this.source = source;
    }

    @Override
    public int read() throws IOException {
      byte[] one = new byte[1];
      int n = read(one, 0, 1);
      return n < 0 ? -1 : one[0] & 0xff;
    }

    @Override
    public int read(byte[] into, int offset, int wanted) {
      if (position == length && !fill()) {
        return -1;
      }
      int n = Math.min(wanted, length - position);
      System.arraycopy(buffer, position, into, offset, n);
      position += n;
      return n;
    }

    private boolean fill() {
      position = 0;
      length = 0;
      while (length < CHUNK && rows.hasNext()) {
        encode(rows.next());
      }
      return length > 0;
    }

    private void encode(InternalRow row) {
      UTF8String rowSource = row.getUTF8String(9);
      if (!source.equals(rowSource)) {
        if (foreign++ == 0) {
          foreignSource = String.valueOf(rowSource);
          foreignId = String.valueOf(row.isNullAt(0) ? null : row.getUTF8String(0));
        }
        return;
      }
      number(part);
      for (int i = 0; i < 4; i++) {
        tab();
        text(row, i);
      }
      tab();
      number(row.getLong(4));
      tab();
      text(row, 5);
      tab();
      text(row, 6);
      tab();
      if (row.isNullAt(7)) {
        nul();
      } else {
        number(row.getInt(7));
      }
      tab();
      if (row.isNullAt(8)) {
        nul();
      } else {
        number(row.getLong(8));
      }
      put((byte) '\n');
      written++;
    }

    private void text(InternalRow row, int ordinal) {
      if (row.isNullAt(ordinal)) {
        nul();
        return;
      }
      // Read in place: UTF8String.getBytes() copies every value into a new array first, which was
      // half of this class's time in a profile of the stream job (1 KB payloads).
      UTF8String value = row.getUTF8String(ordinal);
      Object base = value.getBaseObject();
      long from = value.getBaseOffset();
      int n = value.numBytes();
      ensure(n * 2);
      byte[] out = buffer;
      int at = length;
      int run = 0; // where the bytes not yet copied, all of which pass as they are, begin
      for (int k = 0; k < n; k++) {
        // COPY text reads these four as a delimiter or an escape; every other byte, including
        // those of multi-byte UTF-8 sequences, passes as it is.
        byte escaped;
        switch (Platform.getByte(base, from + k)) {
          case '\\':
            escaped = '\\';
            break;
          case '\n':
            escaped = 'n';
            break;
          case '\r':
            escaped = 'r';
            break;
          case '\t':
            escaped = 't';
            break;
          default:
            continue;
        }
        at = copyRun(base, from + run, k - run, out, at);
        out[at++] = '\\';
        out[at++] = escaped;
        run = k + 1;
      }
      length = copyRun(base, from + run, n - run, out, at);
    }

    private static int copyRun(Object base, long from, int count, byte[] out, int at) {
      Platform.copyMemory(base, from, out, Platform.BYTE_ARRAY_OFFSET + at, count);
      return at + count;
    }

    private void number(long value) {
      String digits = Long.toString(value);
      ensure(digits.length());
      for (int i = 0; i < digits.length(); i++) {
        buffer[length++] = (byte) digits.charAt(i);
      }
    }

    private void nul() {
      ensure(2);
      buffer[length++] = '\\';
      buffer[length++] = 'N';
    }

    private void tab() {
      put((byte) '\t');
    }

    private void put(byte b) {
      ensure(1);
      buffer[length++] = b;
    }

    private void ensure(int more) {
      if (length + more > buffer.length) {
        byte[] grown = new byte[Math.max(buffer.length * 2, length + more)];
        System.arraycopy(buffer, 0, grown, 0, length);
        buffer = grown;
      }
    }
  }
}
