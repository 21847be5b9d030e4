// LSNetClassifier.swift - run an LSNet Core ML model (lsnet-export --format coreml) on iOS/macOS,
// fed as in training.
//
// Documented snippet (Core ML predicts only on Apple platforms; lsnet-deploy is tested on Linux).
//
// The model's creator-defined metadata holds the string map lsnet-export writes into every artifact
// (each value a JSON document in a string): input_size, mean, std, crop_pct, interpolation, labels, ...
//
// Preprocessing to match training (timm's eval transform): resize the short side to
// floor(size / crop_pct), centre crop size x size, RGB. For an image input, Core ML does the scaling
// itself and the model applies mean/std inside; for a tensor input (--tensor-input) the app normalizes.
// Either way the crop must come from crop_pct: cropping the centre square at 0.9 of the short side (what
// resize-then-crop amounts to) is the step apps most often skip - Vision's .centerCrop alone keeps the
// whole short side, which shifts every score.
//
// Core ML resamples with its own filter, not Pillow's antialiased bicubic, so scores differ from Python
// by a little (about 1e-3 on typical photos). For bit-identical input, build the tensor with
// examples/cpp/lsnet_preprocess.hpp through a bridging header and use the --tensor-input model.

import CoreGraphics
import CoreML
import Foundation
import ImageIO
import Vision  // only for VNImageCropAndScaleOption

struct LSNetPrediction {
    let index: Int
    let score: Float
    let label: String?
}

enum LSNetError: Error {
    case missingMetadata(String)
    case badImage
}

final class LSNetClassifier {
    private let model: MLModel
    private let inputName: String
    private let outputName: String
    private let size: (height: Int, width: Int)
    private let mean: [Float]
    private let std: [Float]
    private let cropPct: Double
    let labels: [String]?

    init(compiledModelURL url: URL, configuration: MLModelConfiguration = MLModelConfiguration()) throws {
        model = try MLModel(contentsOf: url, configuration: configuration)
        let meta = model.modelDescription.metadata[.creatorDefinedKey] as? [String: String] ?? [:]
        func field<T>(_ key: String) throws -> T {
            guard let text = meta[key], let data = text.data(using: .utf8),
                  let value = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) as? T
            else { throw LSNetError.missingMetadata(key) }
            return value
        }
        let inputSize: [Int] = try field("input_size")  // [H, W]
        size = (inputSize[0], inputSize[1])
        mean = (try field("mean") as [Double]).map(Float.init)
        std = (try field("std") as [Double]).map(Float.init)
        cropPct = (try? field("crop_pct") as Double) ?? 0.9
        labels = try? field("labels") as [String]
        // every value is JSON, strings included ("\"image\"")
        inputName = (try? field("input_name") as String) ?? model.modelDescription.inputDescriptionsByName.keys.first!
        // "logits" (with --labels the package also has classLabel / classLabel_probs outputs)
        outputName = (try? field("output_name") as String) ?? "logits"
    }

    /// The centre crop of the (upright) image that resize-then-crop keeps, in normalized coordinates.
    private func cropRect(imageWidth: Int, imageHeight: Int) -> CGRect {
        let short = Double(min(imageWidth, imageHeight))
        let resizedShort = floor(Double(size.height) / cropPct)  // square inputs, as LSNet's
        let side = short * Double(size.height) / resizedShort   // source pixels that survive the crop
        let w = side / Double(imageWidth), h = side / Double(imageHeight)
        return CGRect(x: (1 - w) / 2, y: (1 - h) / 2, width: w, height: h)
    }

    func classify(_ image: CGImage, orientation: CGImagePropertyOrientation = .up, topk: Int = 5) throws -> [LSNetPrediction] {
        let rotated = [.left, .right, .leftMirrored, .rightMirrored].contains(orientation)
        let (w, h) = rotated ? (image.height, image.width) : (image.width, image.height)
        let input: MLFeatureValue
        let description = model.modelDescription.inputDescriptionsByName[inputName]!
        if let constraint = description.imageConstraint {
            // image input: Core ML crops, scales to the model size and converts to RGB
            input = try MLFeatureValue(cgImage: image, orientation: orientation, constraint: constraint, options: [
                .cropRect: cropRect(imageWidth: w, imageHeight: h),
                .cropAndScale: VNImageCropAndScaleOption.scaleFill.rawValue,
            ])
        } else {
            input = MLFeatureValue(multiArray: try normalizedTensor(image, orientation: orientation, width: w, height: h))
        }
        let provider = try MLDictionaryFeatureProvider(dictionary: [inputName: input])
        let output = try model.prediction(from: provider)
        guard let logits = output.featureValue(for: outputName)?.multiArrayValue else { return [] }
        let values = (0..<logits.count).map { logits[$0].floatValue }
        let top = values.max() ?? 0
        let exps = values.map { exp(Double($0 - top)) }
        let total = exps.reduce(0, +)
        return exps.indices.sorted { exps[$0] > exps[$1] }.prefix(topk).map {
            LSNetPrediction(index: $0, score: Float(exps[$0] / total), label: labels?[$0])
        }
    }

    /// Tensor input: draw the crop at the model size, then (x / 255 - mean) / std, NCHW float32.
    private func normalizedTensor(_ image: CGImage, orientation: CGImagePropertyOrientation, width: Int, height: Int) throws -> MLMultiArray {
        let (H, W) = size
        var rgba = [UInt8](repeating: 0, count: W * H * 4)
        guard let context = CGContext(data: &rgba, width: W, height: H, bitsPerComponent: 8, bytesPerRow: W * 4,
                                      space: CGColorSpaceCreateDeviceRGB(),
                                      bitmapInfo: CGImageAlphaInfo.noneSkipLast.rawValue) else { throw LSNetError.badImage }
        context.interpolationQuality = .high
        // Apply `orientation` first for photos that are not .up (omitted here for brevity).
        let crop = cropRect(imageWidth: width, imageHeight: height)
        let scaleX = Double(W) / (crop.width * Double(width)), scaleY = Double(H) / (crop.height * Double(height))
        context.draw(image, in: CGRect(x: -crop.minX * Double(width) * scaleX, y: -crop.minY * Double(height) * scaleY,
                                       width: Double(width) * scaleX, height: Double(height) * scaleY))
        let tensor = try MLMultiArray(shape: [1, 3, NSNumber(value: H), NSNumber(value: W)], dataType: .float32)
        let pointer = tensor.dataPointer.bindMemory(to: Float.self, capacity: 3 * H * W)
        for c in 0..<3 {
            for i in 0..<(H * W) {
                pointer[c * H * W + i] = (Float(rgba[i * 4 + c]) / 255 - mean[c]) / std[c]
            }
        }
        return tensor
    }
}
