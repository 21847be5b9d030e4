// LsnetClassifier.kt - run an LSNet .pte on Android with ExecuTorch, fed exactly as in training.
//
// Documented snippet (no Android SDK where lsnet-deploy is tested). LsnetPreprocess.java beside it is
// plain Java and is compiled and checked against the Python preprocessing there (bit-identical).
//
// Gradle: implementation("org.pytorch:executorch-android:1.0.0")   // XNNPACK backend included
//         implementation("androidx.exifinterface:exifinterface:1.3.7")
// Assets: lsnet_t.pte (and lsnet_t.pte.json when the program does not embed its metadata).
//
// The metadata is the string map lsnet-export writes into every artifact (each value a JSON document in
// a string): input_size, mean, std, crop_pct, interpolation, labels, ... A .pte returns it from the
// constant method "lsnet_metadata" (one JSON string); otherwise it sits in "<artifact>.json" beside it,
// possibly wrapped as {"metadata": {...}}.

package org.lsnet.deploy

import android.content.Context
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.graphics.Matrix
import androidx.exifinterface.media.ExifInterface
import org.json.JSONArray
import org.json.JSONObject
import org.pytorch.executorch.EValue
import org.pytorch.executorch.Module
import org.pytorch.executorch.Tensor
import java.io.File
import kotlin.math.exp

data class Prediction(val index: Int, val score: Float, val label: String?)

class LsnetClassifier(context: Context, assetName: String = "lsnet_t.pte") {
    private val module: Module
    private val recipe = LsnetPreprocess.Recipe()
    private val labels: List<String>?

    init {
        val modelFile = copyAsset(context, assetName)  // ExecuTorch loads from a file path
        module = Module.load(modelFile.absolutePath)
        val meta = readMetadata(context, assetName)
        val size = JSONArray(meta.getString("input_size"))  // [H, W]
        recipe.height = size.getInt(0)
        recipe.width = size.getInt(1)
        recipe.mean = floats(JSONArray(meta.getString("mean")))
        recipe.std = floats(JSONArray(meta.getString("std")))
        recipe.cropPct = meta.optString("crop_pct", "0.9").toDouble()
        recipe.interpolation = meta.optString("interpolation", "\"bicubic\"").trim('"')
        labels = if (meta.has("labels")) JSONArray(meta.getString("labels")).let { a -> List(a.length()) { a.getString(it) } } else null
    }

    /** Top-k classes of a photo file (EXIF orientation applied, as the gallery shows it). */
    fun classify(photo: File, topk: Int = 5): List<Prediction> = classify(uprightBitmap(photo), topk)

    /** Top-k classes of a bitmap (ARGB_8888). */
    fun classify(bitmap: Bitmap, topk: Int = 5): List<Prediction> {
        val argb = IntArray(bitmap.width * bitmap.height)
        bitmap.getPixels(argb, 0, bitmap.width, 0, 0, bitmap.width, bitmap.height)
        val input = LsnetPreprocess.preprocess(argb, bitmap.width, bitmap.height, recipe)  // NCHW float32
        val shape = longArrayOf(1, 3, recipe.height.toLong(), recipe.width.toLong())
        val logits = module.forward(EValue.from(Tensor.fromBlob(input, shape)))[0].toTensor().dataAsFloatArray
        val top = logits.maxOrNull() ?: 0f
        val exps = logits.map { exp((it - top).toDouble()) }
        val total = exps.sum()
        return exps.indices.sortedByDescending { exps[it] }.take(topk)
            .map { Prediction(it, (exps[it] / total).toFloat(), labels?.getOrNull(it)) }
    }

    fun close() = module.destroy()

    private fun readMetadata(context: Context, assetName: String): JSONObject {
        // 1. embedded: a constant method returning the map as one JSON string
        if ("lsnet_metadata" in module.methods) {
            val out = module.execute("lsnet_metadata")
            if (out.isNotEmpty() && out[0].isString) return JSONObject(out[0].toStr())
        }
        // 2. sidecar "<artifact>.json" shipped as an asset
        val text = context.assets.open("$assetName.json").bufferedReader().use { it.readText() }
        val root = JSONObject(text)
        return if (!root.has("input_size") && root.has("metadata")) root.getJSONObject("metadata") else root
    }

    private fun floats(array: JSONArray) = FloatArray(array.length()) { array.getDouble(it).toFloat() }

    private fun copyAsset(context: Context, name: String): File {
        val file = File(context.filesDir, name)
        if (!file.exists()) context.assets.open(name).use { input -> file.outputStream().use { input.copyTo(it) } }
        return file
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
