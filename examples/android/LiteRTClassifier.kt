// LiteRTClassifier.kt - run an LSNet .tflite on Android with LiteRT (XNNPACK), fed exactly as in training.
//
// Documented snippet (no Android SDK where lsnet-deploy is tested); it mirrors LsnetClassifier.kt (the
// ExecuTorch one) and shares its preprocessing, LsnetPreprocess.java (short side resized to resize_size
// with the metadata's filter, bicubic by default, centre crop to input_size, mean/std, NCHW float32).
//
// Gradle: implementation("com.google.ai.edge.litert:litert:1.4.0")            // Interpreter, XNNPACK
//         implementation("com.google.ai.edge.litert:litert-metadata:1.4.0")   // org.tensorflow.lite.schema
//         implementation("androidx.exifinterface:exifinterface:1.3.7")
// Assets: lsnet_t.tflite (and lsnet_t.tflite.json when the model does not embed its metadata).
//
// The metadata is the string map lsnet-export writes into every artifact (each value a JSON document in
// a string). A .tflite holds it in the flatbuffer's metadata vector: the entry named "lsnet_metadata"
// points at a buffer holding the whole map as one JSON object.

package org.lsnet.deploy

import android.content.Context
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.graphics.Matrix
import androidx.exifinterface.media.ExifInterface
import org.json.JSONArray
import org.json.JSONObject
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.schema.Model
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.MappedByteBuffer
import java.nio.channels.FileChannel
import kotlin.math.exp

class LiteRTClassifier(context: Context, assetName: String = "lsnet_t.tflite", threads: Int = 2) {
    private val model: MappedByteBuffer = mapAsset(context, assetName)
    private val interpreter: Interpreter
    private val recipe = LsnetPreprocess.Recipe()
    private val labels: List<String>?
    private val numClasses: Int

    init {
        // XNNPACK is LiteRT's default CPU delegate; float16 exports run in float16 on ARMv8.2+ cores
        interpreter = Interpreter(model, Interpreter.Options().setNumThreads(threads).setUseXNNPACK(true))
        val meta = readMetadata(context, assetName)
        val size = JSONArray(meta.getString("input_size"))  // [H, W]
        recipe.height = size.getInt(0)
        recipe.width = size.getInt(1)
        recipe.mean = floats(JSONArray(meta.getString("mean")))
        recipe.std = floats(JSONArray(meta.getString("std")))
        recipe.cropPct = meta.optString("crop_pct", "0.9").toDouble()
        recipe.interpolation = meta.optString("interpolation", "\"bicubic\"").trim('"')
        labels = if (meta.has("labels")) JSONArray(meta.getString("labels")).let { a -> List(a.length()) { a.getString(it) } } else null
        numClasses = interpreter.getOutputTensor(0).shape().last()
    }

    /** Top-k classes of a photo file (EXIF orientation applied, as the gallery shows it). */
    fun classify(photo: File, topk: Int = 5): List<Prediction> = classify(uprightBitmap(photo), topk)

    /** Top-k classes of a bitmap (ARGB_8888). */
    fun classify(bitmap: Bitmap, topk: Int = 5): List<Prediction> {
        val argb = IntArray(bitmap.width * bitmap.height)
        bitmap.getPixels(argb, 0, bitmap.width, 0, 0, bitmap.width, bitmap.height)
        val pixels = LsnetPreprocess.preprocess(argb, bitmap.width, bitmap.height, recipe)  // NCHW float32
        // the .tflite takes NCHW float32, as the PyTorch model did (litert-torch keeps the layout)
        val input = ByteBuffer.allocateDirect(pixels.size * 4).order(ByteOrder.nativeOrder())
        input.asFloatBuffer().put(pixels)
        val logits = Array(1) { FloatArray(numClasses) }
        interpreter.run(input, logits)
        val top = logits[0].maxOrNull() ?: 0f
        val exps = logits[0].map { exp((it - top).toDouble()) }
        val total = exps.sum()
        return exps.indices.sortedByDescending { exps[it] }.take(topk)
            .map { Prediction(it, (exps[it] / total).toFloat(), labels?.getOrNull(it)) }
    }

    fun close() = interpreter.close()

    private fun readMetadata(context: Context, assetName: String): JSONObject {
        // 1. embedded: the "lsnet_metadata" entry of the flatbuffer's metadata vector
        val root = Model.getRootAsModel(model.duplicate().order(ByteOrder.LITTLE_ENDIAN))
        for (i in 0 until root.metadataLength()) {
            val entry = root.metadata(i)
            if (entry.name() != "lsnet_metadata") continue
            val buffer = root.buffers(entry.buffer().toInt())
            val bytes = ByteArray(buffer.dataLength()) { buffer.data(it).toByte() }
            return JSONObject(String(bytes, Charsets.UTF_8))
        }
        // 2. sidecar "<artifact>.json" shipped as an asset
        val text = context.assets.open("$assetName.json").bufferedReader().use { it.readText() }
        val sidecar = JSONObject(text)
        return if (!sidecar.has("input_size") && sidecar.has("metadata")) sidecar.getJSONObject("metadata") else sidecar
    }

    private fun floats(array: JSONArray) = FloatArray(array.length()) { array.getDouble(it).toFloat() }

    // store .tflite assets uncompressed (aaptOptions / androidResources { noCompress += "tflite" }) to map them
    private fun mapAsset(context: Context, name: String): MappedByteBuffer =
        context.assets.openFd(name).use { fd ->
            fd.createInputStream().channel.map(FileChannel.MapMode.READ_ONLY, fd.startOffset, fd.declaredLength)
        }

    private fun uprightBitmap(photo: File): Bitmap {
        val options = BitmapFactory.Options().apply { inPreferredConfig = Bitmap.Config.ARGB_8888 }
        val bitmap = BitmapFactory.decodeFile(photo.absolutePath, options)
            ?: throw IllegalArgumentException("$photo: not a readable image")
        val matrix = Matrix()
        when (ExifInterface(photo.absolutePath).getAttributeInt(ExifInterface.TAG_ORIENTATION, ExifInterface.ORIENTATION_NORMAL)) {
            ExifInterface.ORIENTATION_ROTATE_90 -> matrix.postRotate(90f)
            ExifInterface.ORIENTATION_ROTATE_180 -> matrix.postRotate(180f)
            ExifInterface.ORIENTATION_ROTATE_270 -> matrix.postRotate(270f)
            ExifInterface.ORIENTATION_FLIP_HORIZONTAL -> matrix.postScale(-1f, 1f)
            ExifInterface.ORIENTATION_FLIP_VERTICAL -> matrix.postScale(1f, -1f)
            else -> return bitmap
        }
        return Bitmap.createBitmap(bitmap, 0, 0, bitmap.width, bitmap.height, matrix, false)
    }
}
